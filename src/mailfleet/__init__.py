"""mailfleet: run a self-hosted Mailcow mail fleet from one YAML inventory."""

__version__ = "0.1.0"
