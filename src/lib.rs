//! toggled: a feature-flag evaluation and release server.
//!
//! Data flows one way. The flag file (`flags/feature-flags.yaml`) is read as text, parsed into a
//! lax serde mirror and compiled ([`flags`]) into an immutable [`flags::Snapshot`], in which every
//! name is resolved and every value validated. The pure evaluator ([`eval`]) answers "what does
//! this context get from this flag at this time, given this persisted state" without IO, clock
//! or allocation. The command line ([`cli`], [`app`]) validates files and evaluates flags; the
//! HTTP server, store, reload and monitor tasks build on the same two modules.
//!
//! ```
//! use toggled::eval::{self, FlagState, Reason};
//!
//! let snapshot = toggled::flags::compile(
//!     "feature_flags:\n  dark_mode:\n    rollout_strategy: {type: percentage, percentage: 10, group_id: Feature.flexibleRollout.10}\n",
//! )?;
//! let flag = snapshot.get("dark_mode").expect("compiled");
//! let context: eval::Context = serde_json::from_str(r#"{"targetingKey": "174"}"#).expect("an object");
//! let now = chrono::Utc::now();
//! let answer = eval::evaluate(flag, &context, now, &FlagState::default());
//! assert_eq!((answer.value, answer.reason), (&serde_json::json!(true), Reason::TargetingMatch));
//! # Ok::<(), toggled::flags::CompileErrors>(())
//! ```

/// A closed set of words that is stored or sent as text: an enum with `as_str`, `Display`,
/// serialised as the word, described in OpenAPI as a string enum, and a total `From<&str>`: a
/// word this version does not know (written by a newer one, or sent by a client) is kept as
/// `Other` and never matches a known variant, so code compares variants, not strings.
macro_rules! words {
    ($(#[$m:meta])* $vis:vis enum $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vm])* $variant,)+
            /// A word this version does not know, as read.
            Other(String),
        }

        impl $name {
            /// Every known word.
            pub const ALL: &[$name] = &[$($name::$variant),+];

            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Other(word) => word,
                }
            }

            /// Whether this version knows the word.
            pub fn is_known(&self) -> bool {
                !matches!(self, $name::Other(_))
            }
        }

        impl From<&str> for $name {
            fn from(word: &str) -> Self {
                match word {
                    $($text => $name::$variant,)+
                    other => $name::Other(other.to_owned()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let word = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                Ok($name::from(word.as_ref()))
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

pub mod access;
pub mod app;
pub mod changes;
pub mod cli;
pub mod config;
pub mod eval;
pub mod events;
pub mod export;
pub mod flags;
pub mod http;
pub mod import;
pub mod metrics;
pub mod monitor;
pub mod notify;
pub mod outbound;
pub mod release;
pub mod releasing;
pub mod reload;
pub mod repo;
pub mod reports;
pub mod schedules;
pub mod sdks;
pub mod serving;
pub mod store;
pub mod sync;
pub mod tasks;
pub mod upstream;
