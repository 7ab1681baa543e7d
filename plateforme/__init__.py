"""What every package of Martinique Connect shares: settings, database, key-value store,
audit journal, resource-server token checks, errors and clock. Imports none of our packages."""
