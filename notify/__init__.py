"""Notification channels: their types and settings (``channels``), what an alert is and one
attempt to send it (``events``), the text people read (``message``) and a sender per service
(``services``)."""

from .channels import (
    CHANNEL_TYPES,
    ChannelConfigError,
    channel_settings,
    mask_config,
    validate_channel_config,
)
from .events import AlertEvent, Attempt, ChannelTarget, deliver, passes_filters

__all__ = [
    "CHANNEL_TYPES",
    "AlertEvent",
    "Attempt",
    "ChannelConfigError",
    "ChannelTarget",
    "channel_settings",
    "deliver",
    "mask_config",
    "passes_filters",
    "validate_channel_config",
]
