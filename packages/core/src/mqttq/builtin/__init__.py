"""First-party plugins registered by default, ranked last so any installed plugin can override."""
