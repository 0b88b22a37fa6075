#[tokengate::require_scopes("items write")]
async fn handler() {}

fn main() {}
