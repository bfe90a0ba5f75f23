from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aisoule.kit.validation import InputModel
from aisoule.users.schemas import UserOut
from aisoule.workspaces.schemas import WorkspaceOut


def _not_blank(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    return value


class SignupRequest(InputModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "email": "you@company.com",
                    "password": "your_password",
                    "name": "Asha Rao",
                    "workspace_name": "Acme Retail",
                }
            ]
        },
    )

    email: str = Field(max_length=320)
    password: str = Field(min_length=8, max_length=256)
    name: str = Field(min_length=1, max_length=200)
    workspace_name: str = Field(min_length=1, max_length=200)

    _strip_name = field_validator("name", "workspace_name")(_not_blank)


class LoginRequest(InputModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"email": "you@company.com", "password": "your_password"}]},
    )

    email: str = Field(max_length=320)
    password: str = Field(max_length=256)


class SessionData(BaseModel):
    user: UserOut
    workspace: WorkspaceOut
    csrf_token: str = Field(
        description="Send it back as the X-CSRF-Token header on POST/PUT/PATCH/DELETE."
    )


class MeData(BaseModel):
    user: UserOut | None = Field(description="null when called with an API key")
    workspace: WorkspaceOut
    auth: str = Field(description="session or api_key")
    scopes: list[str]


class LogoutData(BaseModel):
    logged_out: bool


class SwitchWorkspace(InputModel):
    model_config = ConfigDict(extra="forbid")
    workspace_id: str = Field(min_length=1, max_length=64)


class Membership(BaseModel):
    workspace: WorkspaceOut
    role: str
    current: bool


class MembershipList(BaseModel):
    workspaces: list[Membership]
