//! Write a Tocsin plugin in a few lines.
//!
//! Pick the kind with a cargo feature (`transformer`, `filter` or `collector`),
//! implement its trait, and export it:
//!
//! ```ignore
//! use tocsin_plugin::{Batch, Config, Filter, Verdict};
//!
//! struct DropTests;
//!
//! impl Filter for DropTests {
//!     fn filter(batch: &Batch, _config: &Config) -> Result<Vec<Verdict>, String> {
//!         Ok(batch
//!             .events()
//!             .map(|e| match e.label("env") {
//!                 Some("test") => Verdict::Drop("test environment".into()),
//!                 _ => Verdict::Keep,
//!             })
//!             .collect())
//!     }
//! }
//!
//! tocsin_plugin::export_filter!(DropTests);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release` and upload the `.wasm`
//! with `tocsin plugin push`. The SDK hides the WIT's compact batch encoding: a filter
//! reads typed [`EventRef`]s that borrow from one buffer, so a batch of a thousand
//! events crosses into the plugin as three allocations.

#[cfg(any(
    all(feature = "transformer", feature = "filter"),
    all(feature = "transformer", feature = "collector"),
    all(feature = "filter", feature = "collector"),
))]
compile_error!("a plugin is one kind: enable one of the features transformer, filter, collector");

#[cfg(not(any(feature = "transformer", feature = "filter", feature = "collector")))]
compile_error!("enable the feature of the plugin's kind: transformer, filter or collector");

/// The generated bindings of the chosen world (used by the export macros).
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub mod bindings {
    #[cfg(feature = "filter")]
    wit_bindgen::generate!({
        path: "../../wit",
        world: "filter",
        pub_export_macro: true,
        export_macro_name: "__export",
        default_bindings_module: "tocsin_plugin::bindings",
    });
    #[cfg(feature = "transformer")]
    wit_bindgen::generate!({
        path: "../../wit",
        world: "transformer",
        pub_export_macro: true,
        export_macro_name: "__export",
        default_bindings_module: "tocsin_plugin::bindings",
    });
    #[cfg(feature = "collector")]
    wit_bindgen::generate!({
        path: "../../wit",
        world: "collector",
        pub_export_macro: true,
        export_macro_name: "__export",
        default_bindings_module: "tocsin_plugin::bindings",
    });
}

mod config;
pub mod log;
pub mod state;

pub use bindings::tocsin::plugin::types::{
    Alert, Alerting, Event, Grouping, Label, Priority, Spec, Status,
};
pub use config::Config;

#[cfg(feature = "transformer")]
pub use bindings::tocsin::plugin::types::RawInput;
#[cfg(feature = "filter")]
pub use bindings::tocsin::plugin::types::{Batch, Verdict};
#[cfg(feature = "collector")]
pub use bindings::tocsin::plugin::types::{IncidentAlert, IncidentSummary, Section};

impl Event {
    /// An event with only a monitor and a status; add the rest with the builders.
    pub fn new(monitor: impl Into<String>, status: Status) -> Self {
        Self {
            alert: Alert {
                monitor: monitor.into(),
                status,
                since: None,
                message: None,
                count: None,
            },
            context: Vec::new(),
            filters: Vec::new(),
            grouping: None,
            alerting: None,
            plugins: Vec::new(),
        }
    }

    /// Adds a context label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.context.push(Label {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// Sets the message.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.alert.message = Some(message.into());
        self
    }

    /// Sets when the check entered its status, unix milliseconds.
    pub fn since(mut self, unix_ms: i64) -> Self {
        self.alert.since = Some(unix_ms);
        self
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.alerting
            .get_or_insert(Alerting {
                priority: None,
                channel: None,
                ticket_queue: None,
            })
            .priority = Some(priority);
        self
    }
}

/// A transformer: a raw request in, events out.
#[cfg(feature = "transformer")]
pub trait Transformer {
    /// Turns the request into events; `config` holds the request's query parameters.
    fn transform(input: &RawInput, config: &Config) -> Result<Vec<Event>, String>;
}

/// Exports a [`Transformer`] as the plugin's `transform`.
#[cfg(feature = "transformer")]
#[macro_export]
macro_rules! export_transformer {
    ($plugin:ty) => {
        struct __TocsinGuest;
        impl $crate::bindings::Guest for __TocsinGuest {
            fn transform(
                input: $crate::RawInput,
                config: String,
            ) -> Result<Vec<$crate::Event>, String> {
                let config = $crate::Config::parse(&config)?;
                <$plugin as $crate::Transformer>::transform(&input, &config)
            }
        }
        $crate::bindings::__export!(__TocsinGuest with_types_in $crate::bindings);
    };
}

#[cfg(feature = "filter")]
mod batch;
#[cfg(feature = "filter")]
pub use batch::EventRef;

/// A filter: one verdict per event of a batch.
#[cfg(feature = "filter")]
pub trait Filter {
    /// Judges the batch; return exactly one verdict per event, in order.
    fn filter(batch: &Batch, config: &Config) -> Result<Vec<Verdict>, String>;
}

/// Exports a [`Filter`] as the plugin's `filter`.
#[cfg(feature = "filter")]
#[macro_export]
macro_rules! export_filter {
    ($plugin:ty) => {
        struct __TocsinGuest;
        impl $crate::bindings::Guest for __TocsinGuest {
            fn filter(
                batch: $crate::Batch,
                config: String,
            ) -> Result<Vec<$crate::Verdict>, String> {
                let config = $crate::Config::parse(&config)?;
                <$plugin as $crate::Filter>::filter(&batch, &config)
            }
        }
        $crate::bindings::__export!(__TocsinGuest with_types_in $crate::bindings);
    };
}

/// A collector: sections of context for an incident.
#[cfg(feature = "collector")]
pub trait Collector {
    /// Gathers sections; `params` are the collector's params on the event or service.
    fn collect(incident: &IncidentSummary, params: &Config) -> Result<Vec<Section>, String>;
}

/// Exports a [`Collector`] as the plugin's `collect`.
#[cfg(feature = "collector")]
#[macro_export]
macro_rules! export_collector {
    ($plugin:ty) => {
        struct __TocsinGuest;
        impl $crate::bindings::Guest for __TocsinGuest {
            fn collect(
                incident: $crate::IncidentSummary,
                params: String,
            ) -> Result<Vec<$crate::Section>, String> {
                let params = $crate::Config::parse(&params)?;
                <$plugin as $crate::Collector>::collect(&incident, &params)
            }
        }
        $crate::bindings::__export!(__TocsinGuest with_types_in $crate::bindings);
    };
}
