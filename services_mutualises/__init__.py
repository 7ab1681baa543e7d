"""services_mutualises: filled by later issues."""
