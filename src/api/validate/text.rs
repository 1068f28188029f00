//! The one text check every string a caller sends passes before it is
//! used: record fields, resource names, request ids, page tokens.
//!
//! Strings reach PostgreSQL (which refuses NUL in text and JSON: that was
//! an INTERNAL answer), logs, exception summaries and people's screens, and
//! ids are compared byte for byte. So: no control characters, nothing
//! invisible that makes two different keys look alike ("INV-1" and
//! "INV-\u{200B}1") or turns a line around on screen (bidirectional
//! overrides), a bounded length, and ids that are more than whitespace.

/// What a text field holds, which decides what it may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    /// A key or an id another record may name ("ch_3Mm...", "INV-1001", a
    /// SKU, a GL account): no control characters at all, no whitespace
    /// but the plain space (U+0020) inside, not blank, and not starting or
    /// ending with a space, since " INV-1" and "INV-1" would be two keys.
    Id,
    /// Words for people (a memo, a description, a name): tab, line feed
    /// and carriage return are allowed; other control characters are not.
    Prose,
}

/// Why a string was refused, as a field violation's description.
pub fn check(value: &str, kind: Text, max_chars: usize) -> Result<(), String> {
    // Counted before anything is scanned further or echoed.
    let count = value.chars().count();
    if count > max_chars {
        return Err(format!("at most {max_chars} characters, got {count}"));
    }
    for (i, c) in value.chars().enumerate() {
        let at = i + 1;
        if c.is_control() && !(kind == Text::Prose && matches!(c, '\t' | '\n' | '\r')) {
            return Err(format!(
                "must not contain control characters: {} at character {at}",
                code_point(c)
            ));
        }
        if invisible(c) {
            return Err(format!(
                "must not contain invisible characters (zero-width, bidirectional \
                 controls, byte order marks): {} at character {at}",
                code_point(c)
            ));
        }
        if kind == Text::Id && c.is_whitespace() && c != ' ' {
            return Err(format!(
                "the only whitespace an id may hold is a plain space: {} at character {at}",
                code_point(c)
            ));
        }
    }
    if kind == Text::Id {
        if !value.is_empty() && value.trim().is_empty() {
            return Err("must not be blank".into());
        }
        if value.starts_with(char::is_whitespace) || value.ends_with(char::is_whitespace) {
            return Err("must not begin or end with whitespace".into());
        }
    }
    Ok(())
}

fn code_point(c: char) -> String {
    format!("U+{:04X}", c as u32)
}

/// Characters that render as nothing (or reorder what follows) and so make
/// different strings look the same: Unicode's default-ignorable code
/// points that matter in practice, the bidirectional controls, and the
/// noncharacters.
pub fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}'                      // soft hyphen
        | '\u{034F}'                    // combining grapheme joiner
        | '\u{061C}'                    // Arabic letter mark (bidi)
        | '\u{115F}' | '\u{1160}'       // Hangul fillers
        | '\u{17B4}' | '\u{17B5}'       // Khmer inherent vowels
        | '\u{180B}'..='\u{180F}'       // Mongolian selectors and vowel separator
        | '\u{200B}'..='\u{200F}'       // zero-width space/joiners, LRM, RLM
        | '\u{202A}'..='\u{202E}'       // bidi embeddings and overrides
        | '\u{2060}'..='\u{2064}'       // word joiner, invisible operators
        | '\u{2066}'..='\u{206F}'       // bidi isolates, deprecated format chars
        | '\u{3164}'                    // Hangul filler
        | '\u{FE00}'..='\u{FE0F}'       // variation selectors
        | '\u{FEFF}'                    // byte order mark, zero-width no-break space
        | '\u{FFA0}'                    // halfwidth Hangul filler
        | '\u{FFF0}'..='\u{FFFB}'       // unassigned specials, interlinear annotations
        | '\u{1D173}'..='\u{1D17A}'     // musical formatting
        | '\u{E0000}'..='\u{E0FFF}'     // tags, variation selectors supplement
    ) || noncharacter(c)
}

/// U+FDD0..U+FDEF and the last two code points of every plane: never
/// meant for interchange.
fn noncharacter(c: char) -> bool {
    let u = c as u32;
    (0xFDD0..=0xFDEF).contains(&u) || (u & 0xFFFE) == 0xFFFE
}

/// A caller's value as an error message may quote it: at most 40
/// characters, with anything unprintable escaped, so a hostile value can
/// neither flood a message nor hide in it.
pub fn shown(value: &str) -> String {
    const MAX: usize = 40;
    let mut out = String::from("'");
    for (i, c) in value.chars().enumerate() {
        if i == MAX {
            out.push_str("...");
            break;
        }
        if c.is_control() || invisible(c) || (c.is_whitespace() && c != ' ') {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_what_makes_keys_look_alike() {
        assert_eq!(check("INV-1001", Text::Id, 255), Ok(()));
        assert_eq!(check("1200 Accounts Receivable", Text::Id, 255), Ok(()));
        assert_eq!(check("Ünïcødé 注文", Text::Id, 255), Ok(()));
        for bad in [
            "a\0b",
            "a\u{7}b",
            "a\u{85}b",
            "a\tb",
            "a\nb",
            "INV\u{200B}1",
            "INV\u{200D}1",
            "abc\u{202E}fdp.exe",
            "x\u{2066}y",
            "\u{FEFF}INV-1",
            "INV\u{00A0}1",
            "INV\u{3000}1",
            "INV\u{E0041}",
            "x\u{FFFF}",
            "   ",
            " INV-1",
            "INV-1 ",
        ] {
            assert!(check(bad, Text::Id, 255).is_err(), "{bad:?} passed");
        }
    }

    #[test]
    fn prose_allows_line_breaks_but_not_other_controls() {
        assert_eq!(check("line one\r\n\tline two", Text::Prose, 1024), Ok(()));
        assert_eq!(check("   ", Text::Prose, 1024), Ok(()));
        assert!(check("memo\0", Text::Prose, 1024).is_err());
        assert!(check("memo\u{1B}[31m", Text::Prose, 1024).is_err());
        assert!(check("pay \u{202E}01$", Text::Prose, 1024).is_err());
    }

    #[test]
    fn lengths_are_counted_in_characters() {
        assert_eq!(check(&"é".repeat(255), Text::Id, 255), Ok(()));
        assert_eq!(
            check(&"é".repeat(256), Text::Id, 255),
            Err("at most 255 characters, got 256".into())
        );
    }

    #[test]
    fn the_description_names_the_character_and_where_it_is() {
        assert_eq!(
            check("ab\0", Text::Prose, 10),
            Err("must not contain control characters: U+0000 at character 3".into())
        );
    }

    #[test]
    fn quoted_values_are_short_and_escaped() {
        assert_eq!(shown("ZZZ"), "'ZZZ'");
        assert_eq!(shown("a\0b\u{200B}"), "'a\\u{0}b\\u{200b}'");
        assert_eq!(shown(&"x".repeat(1000)), format!("'{}...'", "x".repeat(40)));
    }
}
