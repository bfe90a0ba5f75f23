"""aisoule: open-source WhatsApp Business messaging platform."""

__version__ = "0.1.0"
