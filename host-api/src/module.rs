//! The root module every plugin exports, the plain-C manifest beside it, and
//! [`export_integration!`](crate::export_integration) which declares both.

use std::panic::{AssertUnwindSafe, catch_unwind};

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_types::VersionStrings,
    std_types::{RResult, RStr},
};

use crate::codes::ErrorCode;
use crate::traits::{HostBox, IntegrationBox};
use crate::types::{HostContext, IntegrationError};

/// `MAJOR.MINOR` of a host-api version.
#[repr(C)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiVersion {
    /// Breaking changes.
    pub major: u16,
    /// Additions (see VERSIONING.md for what an addition may be).
    pub minor: u16,
}

impl core::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl ApiVersion {
    /// Parses `MAJOR.MINOR` or `MAJOR.MINOR.PATCH`.
    ///
    /// ```
    /// # use host_api::ApiVersion;
    /// assert_eq!(ApiVersion::parse("1.2.3"), Some(ApiVersion { major: 1, minor: 2 }));
    /// assert_eq!(ApiVersion::parse("x"), None);
    /// ```
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Self { major, minor })
    }
}

const fn parse_u16(s: &str) -> u16 {
    let bytes = s.as_bytes();
    let mut value: u16 = 0;
    let mut i = 0;
    while i < bytes.len() {
        value = value * 10 + (bytes[i] - b'0') as u16;
        i += 1;
    }
    value
}

/// The host-api version this crate is: what a plugin is built against, what a host offers.
pub const API_VERSION: ApiVersion = ApiVersion {
    major: parse_u16(env!("CARGO_PKG_VERSION_MAJOR")),
    minor: parse_u16(env!("CARGO_PKG_VERSION_MINOR")),
};

/// The root module: what a host reads from a plugin file.
///
/// A prefix type; within a major version it does not grow (see VERSIONING.md).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = IntegrationModuleRef)))]
#[sabi(missing_field(panic))]
pub struct IntegrationModule {
    /// The integration's name for people, e.g. "Microsoft 365".
    pub name: RStr<'static>,
    /// The plugin's own version.
    pub version: RStr<'static>,
    /// The host-api version the plugin was built against.
    pub api_version: ApiVersion,
    /// Creates the integration object. `#[sabi(last_prefix_field)]` marks the end of the fields
    /// every version has; fields added after it would be optional (but see VERSIONING.md).
    #[sabi(last_prefix_field)]
    pub new: extern "C" fn(HostBox, HostContext) -> RResult<IntegrationBox, IntegrationError>,
}

impl RootModule for IntegrationModuleRef {
    declare_root_module_statics! {IntegrationModuleRef}
    const BASE_NAME: &'static str = "contact_integration";
    const NAME: &'static str = "contact_integration";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// Name of the plain-C manifest function every plugin exports:
/// `extern "C" fn() -> *const c_char`, a NUL-terminated text a host reads before it runs any
/// other plugin code (so it can name both versions even when the layout check would fail).
pub const MANIFEST_SYMBOL: &[u8] = b"contact_integration_manifest\0";

/// First line of the manifest text.
pub const MANIFEST_HEADER: &str = "contact-integration-manifest 1";

/// What the manifest says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The integration's name.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// The host-api version it was built against.
    pub api_version: ApiVersion,
}

impl Manifest {
    /// The manifest text: a header line, then `key=value` lines.
    ///
    /// ```
    /// # use host_api::{Manifest, API_VERSION};
    /// let m = Manifest { name: "X".into(), version: "0.1.0".into(), api_version: API_VERSION };
    /// assert_eq!(Manifest::parse(&m.to_text()), Some(m));
    /// ```
    pub fn to_text(&self) -> String {
        format!(
            "{MANIFEST_HEADER}\nname={}\nversion={}\napi_version={}\n",
            self.name.replace('\n', " "),
            self.version.replace('\n', " "),
            self.api_version
        )
    }

    /// Parses a manifest text; `None` if it is not one. Unknown keys are ignored.
    pub fn parse(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        if lines.next()?.trim() != MANIFEST_HEADER {
            return None;
        }
        let (mut name, mut version, mut api) = (None, None, None);
        for line in lines {
            match line.split_once('=') {
                Some(("name", v)) => name = Some(v.to_owned()),
                Some(("version", v)) => version = Some(v.to_owned()),
                Some(("api_version", v)) => api = ApiVersion::parse(v),
                _ => {}
            }
        }
        Some(Self {
            name: name?,
            version: version?,
            api_version: api?,
        })
    }
}

/// Runs `f`, turning a panic into a `panicked` error instead of letting it reach the boundary
/// (where abi_stable would end the whole host process).
///
/// ```
/// # use host_api::{catch_panic, ErrorCode};
/// let r = catch_panic::<()>("demo", || panic!("boom"));
/// assert_eq!(r.unwrap_err().code, ErrorCode::PANICKED);
/// ```
pub fn catch_panic<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, IntegrationError>,
) -> RResult<T, IntegrationError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.into(),
        Err(payload) => RResult::RErr(IntegrationError::new(
            ErrorCode::PANICKED,
            format!("panic in {what}: {}", panic_message(payload.as_ref())),
        )),
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Declares a plugin: exports the root module and the manifest.
///
/// `constructor` is `fn(HostBox, HostContext) -> Result<IntegrationBox, IntegrationError>`;
/// a panic inside it is caught. The plugin crate must depend on `abi_stable` itself (its
/// macros name it).
///
/// ```ignore
/// host_api::export_integration! {
///     name: "Microsoft 365",
///     constructor: crate::ffi::new_integration,
/// }
/// ```
#[macro_export]
macro_rules! export_integration {
    (name: $name:expr, constructor: $ctor:path $(,)?) => {
        /// The root module of this plugin.
        #[::abi_stable::export_root_module]
        pub fn __contact_integration_root_module() -> $crate::IntegrationModuleRef {
            use ::abi_stable::prefix_type::PrefixTypeTrait;
            $crate::IntegrationModule {
                name: ::abi_stable::std_types::RStr::from_str($name),
                version: ::abi_stable::std_types::RStr::from_str(env!("CARGO_PKG_VERSION")),
                api_version: $crate::API_VERSION,
                new: __contact_integration_new,
            }
            .leak_into_prefix()
        }

        #[::abi_stable::sabi_extern_fn]
        fn __contact_integration_new(
            host: $crate::HostBox,
            context: $crate::HostContext,
        ) -> ::abi_stable::std_types::RResult<$crate::IntegrationBox, $crate::IntegrationError> {
            $crate::catch_panic("the plugin constructor", move || $ctor(host, context))
        }

        /// The plain-C manifest (see `host_api::MANIFEST_SYMBOL`).
        #[unsafe(no_mangle)]
        pub extern "C" fn contact_integration_manifest() -> *const ::core::ffi::c_char {
            static TEXT: ::std::sync::OnceLock<::std::ffi::CString> = ::std::sync::OnceLock::new();
            TEXT.get_or_init(|| {
                let text = $crate::Manifest {
                    name: ::std::string::String::from($name),
                    version: ::std::string::String::from(env!("CARGO_PKG_VERSION")),
                    api_version: $crate::API_VERSION,
                }
                .to_text();
                ::std::ffi::CString::new(text.replace('\0', " ")).unwrap_or_default()
            })
            .as_ptr()
        }
    };
}
