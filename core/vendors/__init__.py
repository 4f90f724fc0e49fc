"""Vendor adapters: one class per wire style behind ``ImageVendor``; presets are data."""
