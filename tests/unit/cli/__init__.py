"""The CLI helpers: error lines, option parsing."""
