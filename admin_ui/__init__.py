"""admin_ui: filled by later issues."""
