"""Fast tests of single modules; fakes allowed, no external tools."""
