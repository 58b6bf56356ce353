"""Notification channels: their types, the rules for their configuration, and (later) delivery."""

from .channels import CHANNEL_TYPES, ChannelConfigError, mask_config, validate_channel_config

__all__ = ["CHANNEL_TYPES", "ChannelConfigError", "mask_config", "validate_channel_config"]
