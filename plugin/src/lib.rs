use host_api::{HostBox, HostContext, IntegrationBox, IntegrationError};
fn new_integration(_h: HostBox, _c: HostContext) -> Result<IntegrationBox, IntegrationError> {
    Err(IntegrationError::new(host_api::ErrorCode::PLUGIN_ERROR, "not yet"))
}
host_api::export_integration! { name: "Microsoft 365", constructor: new_integration }
