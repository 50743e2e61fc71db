"""Pure domain code: models, validation rules and parsing. No I/O lives here."""
