"""Rejected and recycled leads in email sequences: enrollment and the send sweep, the
suppression list, bounces and complaints from email providers."""
