//! The input line: a small line editor with history, independent of any terminal.

use std::collections::VecDeque;

/// How many sent lines Up/Down can recall.
const HISTORY: usize = 500;

/// What the user is typing, the cursor, and the lines sent before.
#[derive(Debug)]
pub struct InputLine {
    text: String,
    /// A byte offset into `text`, always on a character boundary.
    cursor: usize,
    /// Sent lines, oldest first.
    history: VecDeque<String>,
    /// The history entry shown, while browsing with Up/Down.
    browsing: Option<usize>,
    /// The unsent line that browsing replaced, restored by going past the newest entry.
    draft: String,
    /// The longest line accepted, in bytes; the server would refuse a longer one anyway.
    max: usize,
}

impl InputLine {
    pub fn new(max: usize) -> Self {
        InputLine {
            text: String::new(),
            cursor: 0,
            history: VecDeque::new(),
            browsing: None,
            draft: String::new(),
            max,
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The text before the cursor, whose display width is the cursor's column.
    pub fn before_cursor(&self) -> &str {
        &self.text[..self.cursor]
    }

    /// Inserts a character at the cursor; control characters and characters past the
    /// length limit are ignored.
    pub fn insert(&mut self, c: char) {
        if c.is_control() || self.text.len() + c.len_utf8() > self.max {
            return;
        }
        self.text.insert(self.cursor, c);
        self.cursor += c.len_utf8();
    }

    fn prev_boundary(&self) -> Option<usize> {
        self.text[..self.cursor]
            .char_indices()
            .next_back()
            .map(|(i, _)| i)
    }

    fn next_boundary(&self) -> Option<usize> {
        self.text[self.cursor..]
            .chars()
            .next()
            .map(|c| self.cursor + c.len_utf8())
    }

    pub fn left(&mut self) {
        if let Some(i) = self.prev_boundary() {
            self.cursor = i;
        }
    }

    pub fn right(&mut self) {
        if let Some(i) = self.next_boundary() {
            self.cursor = i;
        }
    }

    pub fn home(&mut self) {
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.cursor = self.text.len();
    }

    /// Deletes the character before the cursor.
    pub fn backspace(&mut self) {
        if let Some(i) = self.prev_boundary() {
            self.text.replace_range(i..self.cursor, "");
            self.cursor = i;
        }
    }

    /// Deletes the character under the cursor.
    pub fn delete(&mut self) {
        if let Some(i) = self.next_boundary() {
            self.text.replace_range(self.cursor..i, "");
        }
    }

    /// Deletes the word before the cursor, as Ctrl-W does in shells.
    pub fn delete_word(&mut self) {
        let before = self.text[..self.cursor].trim_end();
        let start = before
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8());
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.cursor = 0;
        self.browsing = None;
    }

    fn show(&mut self, text: String) {
        self.text = text;
        self.cursor = self.text.len();
    }

    /// Up: shows the previous history entry.
    pub fn older(&mut self) {
        let at = match self.browsing {
            Some(0) => return,
            Some(i) => i - 1,
            None if self.history.is_empty() => return,
            None => {
                self.draft = std::mem::take(&mut self.text);
                self.history.len() - 1
            }
        };
        self.browsing = Some(at);
        self.show(self.history[at].clone());
    }

    /// Down: shows the next history entry, or the draft after the newest.
    pub fn newer(&mut self) {
        let Some(at) = self.browsing else { return };
        if at + 1 < self.history.len() {
            self.browsing = Some(at + 1);
            self.show(self.history[at + 1].clone());
        } else {
            self.browsing = None;
            let draft = std::mem::take(&mut self.draft);
            self.show(draft);
        }
    }

    /// Takes the line for sending, recording it in the history unless it repeats the
    /// newest entry.
    pub fn submit(&mut self) -> String {
        let line = std::mem::take(&mut self.text);
        self.cursor = 0;
        self.browsing = None;
        self.draft.clear();
        if !line.trim().is_empty() && self.history.back() != Some(&line) {
            if self.history.len() == HISTORY {
                self.history.pop_front();
            }
            self.history.push_back(line.clone());
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Types `keys` into a fresh line; `<`, `>`, `^`, `$`, `~`, `!`, `W` are left, right,
    /// home, end, backspace, delete and delete-word. `expected` is the text with `|` at
    /// the cursor.
    fn check(keys: &str, expected: &str) {
        let mut line = InputLine::new(16);
        for key in keys.chars() {
            match key {
                '<' => line.left(),
                '>' => line.right(),
                '^' => line.home(),
                '$' => line.end(),
                '~' => line.backspace(),
                '!' => line.delete(),
                'W' => line.delete_word(),
                c => line.insert(c),
            }
        }
        let shown = format!("{}|{}", line.before_cursor(), &line.text()[line.cursor..]);
        assert_eq!(shown, expected, "keys {keys:?}");
    }

    #[test]
    fn editing() {
        check("abc", "abc|");
        check("abc<<x", "ax|bc");
        check("abc^!", "|bc");
        check("abc^~", "|abc");
        check("abc<<<<<~>>>>!", "abc|");
        check("ab^x$y", "xaby|");
        check("héé<~", "h|é");
        check("日本<!", "日|");
        check("one two  W", "one |");
        check("one twoW", "one |");
        check("oneW", "|");
        check("0123456789abcdefgh", "0123456789abcdef|");
        check("a\tb", "ab|");
    }

    #[test]
    fn history_recalls_and_restores_the_draft() {
        let mut line = InputLine::new(64);
        for sent in ["one", "two", "two", "  "] {
            sent.chars().for_each(|c| line.insert(c));
            assert_eq!(line.submit(), sent);
        }
        "dra".chars().for_each(|c| line.insert(c));
        line.older();
        assert_eq!(
            line.text(),
            "two",
            "repeats and blank lines are not recorded"
        );
        line.older();
        assert_eq!(line.text(), "one");
        line.older();
        assert_eq!(line.text(), "one");
        line.newer();
        assert_eq!(line.text(), "two");
        line.newer();
        assert_eq!(line.text(), "dra");
        line.newer();
        assert_eq!(line.text(), "dra");
        line.clear();
        assert!(line.is_empty());
    }

    #[test]
    fn history_is_bounded() {
        let mut line = InputLine::new(64);
        for i in 0..HISTORY + 10 {
            line.insert(char::from_digit((i % 10) as u32, 10).unwrap_or('x'));
            line.insert('.');
            line.insert(char::from_u32(0x4e00 + i as u32).unwrap_or('x'));
            line.submit();
        }
        assert_eq!(line.history.len(), HISTORY);
    }
}
