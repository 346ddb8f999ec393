//! The command-line contract of every tool: its getopt string, its usage
//! text and how many operands it takes, copied from Berkeley DB 5.3's
//! utilities (see shared/bdb53-facts.md) with our program name put in.
//!
//! Invariant: every letter a usage text shows is in the getopt string. The
//! reverse does not hold on purpose: Berkeley DB accepts a few letters its
//! usage leaves out (`db_hotbackup -F -g`, `db_printlog -D`, `db_stat -Z`
//! in the first form, `db_replicate -L`), and so do we; our additions,
//! `db_hotbackup -r rate` and `db_replicate -D -R -p time`, stay out of
//! the usage text too, so it reads as Berkeley DB's. (Berkeley DB's
//! db_replicate puts its pid after the program name in its usage line;
//! ours does not.)

/// One of our utilities. Its canonical name is the one the binary is
/// installed under; a renamed binary still parses as this tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tool {
    Archive,
    Checkpoint,
    Copy,
    Dump,
    Hotbackup,
    Load,
    Printlog,
    Recover,
    Replicate,
    Stat,
    Verify,
}

/// How many operands (arguments that are not options) a tool accepts. Finer
/// rules (db_dump wants a file unless `-m` is given) belong to the tool's
/// own `parse`, which returns a [`super::Usage`] error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operands {
    pub min: usize,
    pub max: Option<usize>,
}

impl Operands {
    pub const NONE: Operands = Operands {
        min: 0,
        max: Some(0),
    };

    /// Whether `n` operands are acceptable.
    pub fn accepts(self, n: usize) -> bool {
        n >= self.min && self.max.is_none_or(|max| n <= max)
    }
}

/// Everything the harness needs to know to parse a tool's command line.
#[derive(Debug)]
pub struct Spec {
    pub tool: Tool,
    /// The installed binary name, e.g. `db_archive`.
    pub name: &'static str,
    /// A glibc getopt option string: a letter, followed by `:` when it takes
    /// a value.
    pub optstring: &'static str,
    /// The usage text; `{prog}` stands for the program name. Ends without a
    /// newline; continuation lines start with a TAB as in Berkeley DB.
    pub usage: &'static str,
    pub operands: Operands,
    /// Exit status for a usage error or any other failure: 1, except
    /// db_load's 2 (its 1 means "some keys existed" under `-n`).
    pub error_exit: i32,
}

impl Spec {
    /// The usage text with `prog` as the program name, ending in a newline.
    pub fn usage_text(&self, prog: &str) -> String {
        let mut text = self.usage.replace("{prog}", prog);
        text.push('\n');
        text
    }

    /// Whether `letter` is an option of this tool, and whether it takes a
    /// value: `None` when it is not an option at all.
    pub fn takes_value(&self, letter: char) -> Option<bool> {
        self.letters()
            .find(|&(c, _)| c == letter)
            .map(|(_, value)| value)
    }

    /// The option letters in getopt order, each with its clap id (the
    /// letter's own slice of the optstring, so it lives as long as the
    /// spec) and whether it takes a value.
    pub fn letter_ids(&self) -> impl Iterator<Item = (char, &'static str, bool)> {
        let optstring: &'static str = self.optstring;
        let mut chars = optstring.char_indices().peekable();
        std::iter::from_fn(move || {
            let (at, c) = chars.next()?;
            let value = chars.next_if(|&(_, n)| n == ':').is_some();
            Some((c, &optstring[at..at + c.len_utf8()], value))
        })
    }

    /// The option letters in getopt order, each with whether it takes a value.
    pub fn letters(&self) -> impl Iterator<Item = (char, bool)> + '_ {
        self.letter_ids().map(|(c, _, value)| (c, value))
    }
}

const ONE: Operands = Operands {
    min: 1,
    max: Some(1),
};

static SPECS: [Spec; 11] = [
    Spec {
        tool: Tool::Archive,
        name: "db_archive",
        optstring: "adh:lP:sVv",
        usage: "usage: {prog} [-adlsVv] [-h home] [-P password]",
        operands: Operands::NONE,
        error_exit: 1,
    },
    Spec {
        tool: Tool::Checkpoint,
        name: "db_checkpoint",
        optstring: "1h:k:L:P:p:Vv",
        usage: "usage: {prog} [-1Vv]\n\t[-h home] [-k kbytes] [-L file] [-P password] [-p min]",
        operands: Operands::NONE,
        error_exit: 1,
    },
    Spec {
        tool: Tool::Copy,
        name: "db_copy",
        optstring: "Fh:t:Vv",
        usage: "usage: {prog} [-FVv] [-h home] source ... target\n\
                usage: {prog} [-FVv] [-h home] -t target source ...",
        operands: Operands { min: 1, max: None },
        error_exit: 1,
    },
    Spec {
        tool: Tool::Dump,
        name: "db_dump",
        optstring: "d:f:h:klm:NpP:rRs:V",
        usage: "usage: {prog} [-klNprRV]\n\
                \t[-d ahr] [-f output] [-h home] [-P password] [-s database] db_file\n\
                usage: {prog} [-kNpV] [-d ahr] [-f output] [-h home] -m database",
        operands: Operands {
            min: 0,
            max: Some(1),
        },
        error_exit: 1,
    },
    Spec {
        tool: Tool::Hotbackup,
        name: "db_hotbackup",
        optstring: "b:cDd:Fgh:l:P:r:uVv",
        usage: "usage: {prog} [-cDuVv]\n\
                \t[-d data_dir ...] [-h home] [-l log_dir] [-P password] -b backup_dir",
        operands: Operands::NONE,
        error_exit: 1,
    },
    Spec {
        tool: Tool::Load,
        name: "db_load",
        optstring: "c:f:h:nP:r:Tt:V",
        usage: "usage: {prog} [-nTV] [-c name=value] [-f file]\n\
                \t[-h home] [-P password] [-t btree | hash | recno | queue] db_file\n\
                usage: {prog} -r lsn | fileid [-h home] [-P password] db_file",
        operands: ONE,
        error_exit: 2,
    },
    Spec {
        tool: Tool::Printlog,
        name: "db_printlog",
        optstring: "b:D:e:h:NP:rV",
        usage: "usage: {prog} [-NrV] [-b file/offset] [-e file/offset] [-h home] [-P password]",
        operands: Operands::NONE,
        error_exit: 1,
    },
    Spec {
        tool: Tool::Recover,
        name: "db_recover",
        optstring: "cefh:P:t:Vv",
        usage: "usage: {prog} [-cefVv] [-h home] [-P password] [-t [[CC]YY]MMDDhhmm[.SS]]",
        operands: Operands::NONE,
        error_exit: 1,
    },
    Spec {
        tool: Tool::Replicate,
        name: "db_replicate",
        optstring: "MDh:L:P:p:RT:t:Vv",
        usage: "usage: {prog} [-MVv]\n\t[-h home] [-P password] [-T nthreads] [-t seconds]",
        operands: Operands::NONE,
        error_exit: 1,
    },
    Spec {
        tool: Tool::Stat,
        name: "db_stat",
        optstring: "aC:cd:Eefgh:L:lM:mNP:R:rs:tVxX:Z",
        usage: "usage: {prog} -d file [-fN] [-h home] [-P password] [-s database]\n\
                usage: {prog} [-cEelmrtVx] [-C Aclop]\n\
                \t[-h home] [-L A] [-M A] [-P password] [-R A] [-X A] [-aNZ]",
        operands: Operands::NONE,
        error_exit: 1,
    },
    Spec {
        tool: Tool::Verify,
        name: "db_verify",
        optstring: "h:NoP:qV",
        usage: "usage: {prog} [-NoqV] [-h home] [-P password] db_file ...",
        operands: Operands { min: 1, max: None },
        error_exit: 1,
    },
];

impl Tool {
    /// Every tool, in alphabetical order of its name.
    pub const ALL: [Tool; 11] = [
        Tool::Archive,
        Tool::Checkpoint,
        Tool::Copy,
        Tool::Dump,
        Tool::Hotbackup,
        Tool::Load,
        Tool::Printlog,
        Tool::Recover,
        Tool::Replicate,
        Tool::Stat,
        Tool::Verify,
    ];

    pub fn spec(self) -> &'static Spec {
        SPECS
            .iter()
            .find(|spec| spec.tool == self)
            .expect("every tool has a spec")
    }

    /// The installed binary name, e.g. `db_archive`.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The tool whose binary is called `name`.
    pub fn from_name(name: &str) -> Option<Tool> {
        SPECS.iter().find(|spec| spec.name == name).map(|s| s.tool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every letter shown in brackets or after a dash in a usage text must be
    /// one the tool accepts, so a user copying the usage never gets "invalid
    /// option".
    #[test]
    fn usage_letters_are_accepted() {
        for tool in Tool::ALL {
            let spec = tool.spec();
            for word in spec.usage.split(|c: char| c.is_whitespace() || c == '[') {
                let Some(letters) = word.strip_prefix('-') else {
                    continue;
                };
                let letters = letters.trim_end_matches(']');
                for c in letters.chars().filter(|c| c.is_ascii_alphanumeric()) {
                    assert!(
                        spec.takes_value(c).is_some(),
                        "{}: usage shows -{c} but optstring {} lacks it",
                        spec.name,
                        spec.optstring
                    );
                }
            }
        }
    }

    #[test]
    fn letters_parse_the_optstring() {
        let spec = Tool::Archive.spec();
        let letters: Vec<_> = spec.letters().collect();
        assert_eq!(
            letters,
            [
                ('a', false),
                ('d', false),
                ('h', true),
                ('l', false),
                ('P', true),
                ('s', false),
                ('V', false),
                ('v', false)
            ]
        );
        assert_eq!(spec.takes_value('Z'), None);
    }

    #[test]
    fn names_round_trip() {
        for tool in Tool::ALL {
            assert_eq!(Tool::from_name(tool.name()), Some(tool));
            assert!(tool.spec().usage_text("x").starts_with("usage: x "));
        }
        assert_eq!(Tool::from_name("db5.3_archive"), None);
    }
}
