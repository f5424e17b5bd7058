"""Code that runs inside guests (never imported by the host for its own use)."""
