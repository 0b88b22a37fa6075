tokengate::scope_set! {
    pub struct Bad = "tab\there";
}

fn main() {}
