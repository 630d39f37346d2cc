//! Spellings every source of a setting shares: a boolean reads the same from a flag, a
//! `USHER_*` variable and the config file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

/// Where `usher serve` keeps its state unless told otherwise.
pub const DEFAULT_DATA_DIR: &str = "./usher-data";

/// The admin token of a client command (`usher admin`, `usher load`): the one given
/// (`--token` or `USHER_ADMIN_TOKEN`), else the one a local server generated and keeps
/// in `<data_dir>/admin-token`. When there is none, says where it looked.
pub fn client_admin_token(given: Option<&str>, data_dir: Option<&Path>) -> Result<String, String> {
    if let Some(token) = given.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(token.to_string());
    }
    let dir = data_dir.map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), Path::to_path_buf);
    let file = dir.join("admin-token");
    match std::fs::read_to_string(&file) {
        Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_string()),
        Ok(_) => Err(format!(
            "no admin token: --token is not given, USHER_ADMIN_TOKEN is not set, and {} is empty",
            file.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "no admin token: --token is not given, USHER_ADMIN_TOKEN is not set, and there is no {} \
             (where `usher serve` keeps the token it generates); pass --token, or --data-dir \
             if the server keeps its state elsewhere",
            file.display()
        )),
        Err(e) => Err(format!("no admin token: cannot read {}: {e}", file.display())),
    }
}

/// The spellings of true and false a setting accepts, in any case.
const TRUE: [&str; 6] = ["1", "true", "yes", "on", "y", "t"];
const FALSE: [&str; 6] = ["0", "false", "no", "off", "n", "f"];

/// `1/true/yes/on` or `0/false/no/off` (any case, surrounding blanks ignored).
pub fn parse_bool(text: &str) -> Result<bool, String> {
    let word = text.trim().to_ascii_lowercase();
    if TRUE.contains(&word.as_str()) {
        Ok(true)
    } else if FALSE.contains(&word.as_str()) {
        Ok(false)
    } else {
        Err(format!(
            "{text:?} is not a boolean; use 1, true, yes or on, or 0, false, no or off"
        ))
    }
}

/// A config file boolean: `true`/`false`, `1`/`0`, or one of the spellings of
/// [`parse_bool`] as a string.
pub fn deserialize_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Spelt {
        Bool(bool),
        Number(i64),
        Text(String),
    }
    match Option::<Spelt>::deserialize(d)? {
        None => Ok(None),
        Some(Spelt::Bool(b)) => Ok(Some(b)),
        Some(Spelt::Number(0)) => Ok(Some(false)),
        Some(Spelt::Number(1)) => Ok(Some(true)),
        Some(Spelt::Number(n)) => Err(serde::de::Error::custom(format!(
            "{n} is not a boolean; use true or false"
        ))),
        Some(Spelt::Text(text)) => parse_bool(&text)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_finds_the_token_a_local_server_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let err = client_admin_token(None, Some(dir.path())).unwrap_err();
        assert!(
            err.contains("--token") && err.contains("USHER_ADMIN_TOKEN"),
            "{err}"
        );
        assert!(
            err.contains(&dir.path().join("admin-token").display().to_string()),
            "{err}"
        );
        std::fs::write(dir.path().join("admin-token"), "usa_from-the-file\n").unwrap();
        assert_eq!(
            client_admin_token(None, Some(dir.path())).unwrap(),
            "usa_from-the-file"
        );
        assert_eq!(
            client_admin_token(Some("given"), Some(dir.path())).unwrap(),
            "given"
        );
        assert_eq!(
            client_admin_token(Some("  "), Some(dir.path())).unwrap(),
            "usa_from-the-file"
        );
    }

    #[test]
    fn the_usual_spellings_of_a_boolean_are_accepted() {
        for yes in ["1", "true", "TRUE", "yes", "On", " on "] {
            assert_eq!(parse_bool(yes), Ok(true), "{yes}");
        }
        for no in ["0", "false", "No", "off", "OFF"] {
            assert_eq!(parse_bool(no), Ok(false), "{no}");
        }
        let err = parse_bool("maybe").unwrap_err();
        assert!(err.contains("maybe") && err.contains("yes"), "{err}");
    }

    #[test]
    fn a_config_boolean_may_be_spelt_as_a_word_or_a_number() {
        #[derive(Deserialize)]
        struct File {
            #[serde(default, deserialize_with = "deserialize_bool")]
            demo: Option<bool>,
        }
        let read = |text: &str| toml::from_str::<File>(text).map(|f| f.demo);
        assert_eq!(read("demo = true").unwrap(), Some(true));
        assert_eq!(read("demo = \"yes\"").unwrap(), Some(true));
        assert_eq!(read("demo = \"off\"").unwrap(), Some(false));
        assert_eq!(read("demo = 1").unwrap(), Some(true));
        assert_eq!(read("demo = 0").unwrap(), Some(false));
        assert_eq!(read("").unwrap(), None);
        assert!(read("demo = \"perhaps\"").is_err());
        assert!(read("demo = 2").is_err());
    }
}
