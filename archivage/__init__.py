"""archivage: filled by later issues."""
