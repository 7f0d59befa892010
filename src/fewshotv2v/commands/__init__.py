"""CLI commands, one module each. Thin: parse options, call the library, print results."""
