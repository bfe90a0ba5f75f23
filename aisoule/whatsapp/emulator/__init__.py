"""A local stand-in for Meta's WhatsApp Cloud API (same wire format), state in memory."""

from aisoule.whatsapp.emulator.app import create_emulator_app
from aisoule.whatsapp.emulator.settings import EmulatorSettings

__all__ = ["EmulatorSettings", "create_emulator_app"]
