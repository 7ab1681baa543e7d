"""Composition root of Martinique Connect: the only package that knows every concrete class.
Nothing imports it."""
