"""What `make run` prints before the server starts: the first five minutes."""

from __future__ import annotations

from aisoule.config import get_settings


def main() -> None:
    s = get_settings()
    base = f"http://{s.host}:{s.port}"
    print(
        f"""
aisoule is starting on {base}  (database: {s.effective_database_url})

Open {base} in your browser: sign up, and the dashboard walks you through your sandbox
number, your first API key and your contacts. Or, from another terminal, the API:

  # 1. sign up (creates your workspace and logs you in)
  curl -c cookies.txt -X POST {base}/api/auth/signup -H 'Content-Type: application/json' \\
    -d '{{"email": "you@company.com", "password": "your_password", "name": "You", "workspace_name": "My Shop"}}'

  # 2. create an API key (send the csrf_token from step 1 as X-CSRF-Token); the key is shown once
  curl -b cookies.txt -X POST {base}/api/api-keys -H 'Content-Type: application/json' \\
    -H "X-CSRF-Token: $(grep csrf_token cookies.txt | cut -f7)" -d '{{"name": "CRM Integration"}}'

  # 3. your first calls
  curl -H "X-API-Key: $KEY" {base}/api/contacts
  curl -X POST {base}/v1/contacts -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \\
    -d '{{"phone": "918856879188", "first_name": "Priya", "tags": ["Lead"]}}'

  # 4. WhatsApp without Meta: your sandbox number (phone_number_id), a customer writes, you answer
  curl -H "X-API-Key: $KEY" {base}/api/accounts
  curl -X POST {base}/emulator/_emulator/inbound -H 'Content-Type: application/json' \\
    -d '{{"phone_number_id": "<from above>", "from": "919876543210", "name": "Priya", "text": "Hi!"}}'
  curl -X POST {base}/api/messages/send -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \\
    -d '{{"to": "+919876543210", "text": {{"body": "Hello Priya!"}}}}'

API docs: {base}/docs     Guide: README.md     Stop: Ctrl+C
"""
    )


if __name__ == "__main__":
    main()
