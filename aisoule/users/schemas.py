from __future__ import annotations

from pydantic import BaseModel

from aisoule.kit.time import iso_z
from aisoule.models import User


class UserOut(BaseModel):
    id: str
    email: str
    name: str
    role: str
    created_at: str


def user_out(user: User, role: str) -> dict[str, object]:
    return {
        "id": str(user.id),
        "email": user.email,
        "name": user.name,
        "role": role,
        "created_at": iso_z(user.created_at),
    }
