//! A request's own strings (not records): filters, owners, notes, etags,
//! page tokens, contract fields. Each goes through the same text check as
//! a record's fields (`text::check`), so a NUL, a bidirectional control or
//! an ANSI escape is INVALID_ARGUMENT naming the field on every RPC, before
//! anything reaches storage, a log or a person's screen.

use super::text::{self, Text};
use crate::error::{Error, Result};

/// A person or team named as an owner or an actor.
pub const OWNER_MAX: usize = 128;
/// A note on an exception.
pub const NOTE_MAX: usize = 4096;
/// An etag (a version number as text).
pub const ETAG_MAX: usize = 64;
/// A page token, before it is decoded: far more than any this service issues.
pub const TOKEN_MAX: usize = 1024;

/// An id, key or name (`Text::Id`, at most `max` characters); empty passes.
pub fn id(field: &str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Ok(());
    }
    text::check(value, Text::Id, max).map_err(|why| Error::invalid(field, why))
}

/// The same, and not empty.
pub fn required_id(field: &str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(field, "required"));
    }
    id(field, value, max)
}

/// Words for people (`Text::Prose`, at most `max` characters); empty passes.
pub fn prose(field: &str, value: &str, max: usize) -> Result<()> {
    text::check(value, Text::Prose, max).map_err(|why| Error::invalid(field, why))
}

/// A page token as received: printable ASCII of a sane length, refused
/// unquoted (a token is opaque, so the caller learns only to start again).
pub fn token(field: &str, value: &str) -> Result<()> {
    if value.len() > TOKEN_MAX || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            field,
            "malformed page token; start again without one",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_strings_get_the_record_fields_check() {
        for bad in ["a\0", "a\u{202E}b", "a\u{1b}[31m", &"x".repeat(20_000)] {
            assert!(id("owner", bad, OWNER_MAX).is_err(), "{bad:?}");
            assert!(prose("note", bad, NOTE_MAX).is_err(), "{bad:?}");
            assert!(token("page_token", bad).is_err(), "{bad:?}");
        }
        assert!(id("owner", "José Núñez", OWNER_MAX).is_ok());
        assert!(id("owner", "", OWNER_MAX).is_ok());
        assert!(required_id("owner", "", OWNER_MAX).is_err());
        assert!(prose("note", "called the 3PL\r\n\tagain", NOTE_MAX).is_ok());
        assert!(token("page_token", "31307c61").is_ok());
    }
}
