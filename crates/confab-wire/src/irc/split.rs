//! Splitting a message too long for one IRC line into several, as other servers do: a
//! line is at most 512 bytes without its tags (`:prefix COMMAND target :text` and CR
//! LF), while a line or web user may send several kilobytes in one message.
//!
//! Each part is cut at the last space that fits (the space itself is not sent, since
//! the line break stands for it), or, in a word longer than a line, at the last UTF-8
//! character boundary that fits. Parts keep their order and are never empty.
//!
//! Used by the event encoders beside it ([`super::encode`]) and by the server's
//! CHATHISTORY replay, which must split a stored message as it was split live.

use super::MAX_MESSAGE;

/// The least text one part carries, whatever the prefix and target take: enough for
/// any character, so that splitting always makes progress.
pub const MIN_PART: usize = 64;

/// How many bytes of text a line can carry when everything else on it (source,
/// command, target, ` :`, CTCP framing and CR LF) takes `overhead` bytes.
#[inline]
pub fn budget(overhead: usize) -> usize {
    MAX_MESSAGE.saturating_sub(overhead).max(MIN_PART)
}

/// Whether text of `len` bytes fits on one line beside `overhead`.
#[inline]
pub fn fits(overhead: usize, len: usize) -> bool {
    overhead + len <= MAX_MESSAGE
}

/// The parts of `text`, each at most `budget` bytes (at least [`MIN_PART`] is used).
#[inline]
pub fn parts(text: &str, budget: usize) -> Parts<'_> {
    Parts {
        rest: text,
        budget: budget.max(MIN_PART),
    }
}

/// The iterator [`parts`] returns.
pub struct Parts<'a> {
    rest: &'a str,
    budget: usize,
}

impl<'a> Iterator for Parts<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        if self.rest.len() <= self.budget {
            return Some(std::mem::take(&mut self.rest));
        }
        // The last space at which a part of at most `budget` bytes ends; a space at
        // the very start would leave an empty part, so it does not count.
        let bytes = self.rest.as_bytes();
        let (end, next) = match bytes[1..=self.budget].iter().rposition(|&b| b == b' ') {
            Some(i) => (i + 1, i + 2),
            None => {
                let mut end = self.budget;
                while !self.rest.is_char_boundary(end) {
                    end -= 1;
                }
                (end, end)
            }
        };
        let part = &self.rest[..end];
        self.rest = &self.rest[next..];
        Some(part)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn breaks_at_the_last_space_that_fits_and_drops_it() {
        let text = format!("{} {} {}", "a".repeat(40), "b".repeat(30), "c".repeat(20));
        let got: Vec<&str> = parts(&text, 75).collect();
        assert_eq!(
            got,
            ["a".repeat(40) + " " + &"b".repeat(30), "c".repeat(20)]
        );
    }

    #[test]
    fn a_word_longer_than_a_line_is_cut_at_a_character_boundary() {
        // 'é' is two bytes: 64 bytes hold 32 of them, 65 bytes still only 32.
        let text = "é".repeat(100);
        let got: Vec<&str> = parts(&text, 65).collect();
        assert_eq!(
            got,
            [
                "é".repeat(32),
                "é".repeat(32),
                "é".repeat(32),
                "é".repeat(4)
            ]
        );
    }

    #[test]
    fn a_space_ending_the_text_at_a_break_is_taken_with_it() {
        // Found by the property below: 64 bytes, a space, the end.
        let text = format!("{} ", "a".repeat(64));
        assert_eq!(parts(&text, 64).collect::<Vec<_>>(), ["a".repeat(64)]);
    }

    #[test]
    fn short_text_is_one_part_and_the_budget_has_a_floor() {
        assert_eq!(parts("hello", 400).collect::<Vec<_>>(), ["hello"]);
        assert_eq!(parts(&"x".repeat(65), 0).count(), 2);
        assert_eq!(budget(600), MIN_PART);
        assert_eq!(budget(100), 412);
    }

    proptest! {
        #[test]
        fn parts_fit_keep_every_character_and_lose_only_break_spaces(
            text in "[a-zé€😀 ]{1,2000}",
            budget in 64usize..500,
        ) {
            let got: Vec<&str> = parts(&text, budget).collect();
            for part in &got {
                prop_assert!(!part.is_empty() && part.len() <= budget);
            }
            // Every character but the spaces taken at breaks is kept, in order; each
            // part ends with at most one break (the last part takes one only when the
            // text ends with a space just past a full part).
            let joined: String = got.concat();
            let without_spaces: String = text.chars().filter(|&c| c != ' ').collect();
            prop_assert_eq!(joined.replace(' ', ""), without_spaces);
            prop_assert!(text.len() - joined.len() <= got.len());
        }
    }
}
