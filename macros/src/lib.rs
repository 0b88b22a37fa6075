//! `#[require_scopes(...)]` and `#[require(...)]` for axum handlers: the
//! proc-macro half of [tokengate](https://docs.rs/tokengate). Use them
//! through `tokengate::require_scopes` and `tokengate::require` (feature
//! `macros`).

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{format_ident, quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprCall, ExprLit, FnArg, ItemFn, Lit, LitStr, Token, parse_macro_input};

/// Requires scopes of the token for an axum handler.
///
/// `#[require_scopes("a", "b")]` (or `all("a", "b")`) needs every scope;
/// `#[require_scopes(any("a", "b"))]` needs one (a refusal names the first,
/// `scope="a"`, since RFC 6750 §3 reads a list as "all of these"). The
/// handler gains a leading
/// `tokengate::axum::Scoped<…>` extractor, so principals without the scopes
/// get 403 `insufficient_scope` before the handler runs, and requests without
/// a principal get 401. Each scope must be RFC 6749 §3.3 syntax, checked here
/// at compile time.
#[proc_macro_attribute]
pub fn require_scopes(attr: TokenStream, item: TokenStream) -> TokenStream {
    let handler = parse_macro_input!(item as ItemFn);
    match expand(attr.into(), handler) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(
    attr: proc_macro2::TokenStream,
    mut handler: ItemFn,
) -> syn::Result<proc_macro2::TokenStream> {
    let args = Punctuated::<Expr, Token![,]>::parse_terminated.parse2(attr)?;
    let (any, scopes) = scopes(&args)?;
    if let Some(receiver) = handler
        .sig
        .inputs
        .iter()
        .find(|a| matches!(a, FnArg::Receiver(_)))
    {
        return Err(syn::Error::new(
            receiver.span(),
            "#[require_scopes] works on free-standing handler functions, not methods",
        ));
    }
    // The scope syntax is checked by the library's own `is_scope_token`, in
    // a constant the compiler evaluates: one rule, so the attribute cannot
    // drift from what the crate accepts at run time. Spanned on the literal,
    // so the error points at the bad scope.
    let checks = scopes.iter().map(scope_check);
    let marker = format_ident!("__TokengateScopes_{}", handler.sig.ident);
    let vis = &handler.vis;
    let guard: FnArg = syn::parse_quote! { _: ::tokengate::axum::Scoped<#marker> };
    handler.sig.inputs.insert(0, guard);
    Ok(quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy)]
        #vis struct #marker;

        impl ::tokengate::ScopeSet for #marker {
            const SCOPES: &'static [&'static str] = &[#(#scopes),*];
            const ANY: bool = #any;
        }

        #(#checks)*

        #handler
    })
}

/// `("a", "b")`, `(all("a", "b"))` or `(any("a", "b"))`.
fn scopes(args: &Punctuated<Expr, Token![,]>) -> syn::Result<(bool, Vec<LitStr>)> {
    if let [
        Expr::Call(ExprCall {
            func, args: inner, ..
        }),
    ] = args.iter().collect::<Vec<_>>().as_slice()
    {
        let any = match func.as_ref() {
            Expr::Path(p) if p.path.is_ident("any") => true,
            Expr::Path(p) if p.path.is_ident("all") => false,
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "expected scope strings, `all(\"…\", …)` or `any(\"…\", …)`",
                ));
            }
        };
        return Ok((any, literals(inner, func.span())?));
    }
    Ok((false, literals(args, Span::call_site())?))
}

fn literals(args: &Punctuated<Expr, Token![,]>, span: Span) -> syn::Result<Vec<LitStr>> {
    if args.is_empty() {
        return Err(syn::Error::new(
            span,
            "#[require_scopes] needs at least one scope",
        ));
    }
    args.iter()
        .map(|arg| match arg {
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => Ok(s.clone()),
            other => Err(syn::Error::new(
                other.span(),
                "expected a scope string literal",
            )),
        })
        .collect()
}

/// Requires of an axum handler's caller what a [`Requirement`] can say,
/// written as clauses that must all hold:
///
/// | clause | means |
/// |---|---|
/// | `scopes("a", "b")`, `scopes_any("a", "b")` | every one / one of these scopes |
/// | `role("r")`, `roles("r", "s")`, `roles_any("r", "s")` | the role / every one / one of these roles |
/// | `claim_equals("path", value)`, `claim_contains("path", value)` | a claim (dotted path) equals / contains a value |
/// | `client("a", "b")` | the client is one of these |
/// | `machine`, `user` | client-credentials callers only / users only |
/// | `issued_within(secs)` | a token at most this old |
/// | `acr("v", …)`, `max_auth_age(secs)` | step-up (RFC 9470) |
/// | `all(…)`, `any(…)`, `not(…)` | combinations of clauses |
///
/// The handler gains a leading `tokengate::axum::Authorized<…>`
/// extractor: a caller who does not meet the requirement gets the
/// requirement's answer (403 `insufficient_scope`, 401
/// `insufficient_user_authentication`…) before the handler runs. Checked
/// at compile time: unknown clauses, empty lists, empty strings and
/// malformed scopes are errors.
///
/// [`Requirement`]: https://docs.rs/tokengate/latest/tokengate/struct.Requirement.html
#[proc_macro_attribute]
pub fn require(attr: TokenStream, item: TokenStream) -> TokenStream {
    let handler = parse_macro_input!(item as ItemFn);
    match expand_require(attr.into(), handler) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand_require(
    attr: proc_macro2::TokenStream,
    mut handler: ItemFn,
) -> syn::Result<proc_macro2::TokenStream> {
    let args = Punctuated::<Expr, Token![,]>::parse_terminated.parse2(attr)?;
    if args.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[require] needs at least one clause",
        ));
    }
    if let Some(receiver) = handler
        .sig
        .inputs
        .iter()
        .find(|a| matches!(a, FnArg::Receiver(_)))
    {
        return Err(syn::Error::new(
            receiver.span(),
            "#[require] works on free-standing handler functions, not methods",
        ));
    }
    let mut checks = Vec::new();
    let clauses = args
        .iter()
        .map(|clause| requirement(clause, &mut checks))
        .collect::<syn::Result<Vec<_>>>()?;
    let marker = format_ident!("__TokengateRequirement_{}", handler.sig.ident);
    let vis = &handler.vis;
    let guard: FnArg = syn::parse_quote! { _: ::tokengate::axum::Authorized<#marker> };
    handler.sig.inputs.insert(0, guard);
    Ok(quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy)]
        #vis struct #marker;

        impl ::tokengate::RequirementSet for #marker {
            fn requirement() -> &'static ::tokengate::Requirement {
                static REQUIREMENT: ::std::sync::LazyLock<::tokengate::Requirement> =
                    ::std::sync::LazyLock::new(|| ::tokengate::Requirement::all([#(#clauses),*]));
                &REQUIREMENT
            }
        }

        #(#checks)*

        #handler
    })
}

/// One clause, as the `Requirement` expression it stands for.
fn requirement(
    clause: &Expr,
    checks: &mut Vec<proc_macro2::TokenStream>,
) -> syn::Result<proc_macro2::TokenStream> {
    let unknown = |span: Span| {
        syn::Error::new(
            span,
            "expected a clause: scopes(..), scopes_any(..), role(..), roles(..), roles_any(..), \
             claim_equals(..), claim_contains(..), client(..), machine, user, issued_within(..), \
             acr(..), max_auth_age(..), all(..), any(..) or not(..)",
        )
    };
    let (name, args) = match clause {
        Expr::Path(p) => match p.path.get_ident().map(ToString::to_string).as_deref() {
            Some("machine") => return Ok(quote!(::tokengate::Requirement::machine())),
            Some("user") => return Ok(quote!(::tokengate::Requirement::user())),
            _ => return Err(unknown(p.span())),
        },
        Expr::Call(ExprCall { func, args, .. }) => match func.as_ref() {
            Expr::Path(p) if p.path.get_ident().is_some() => {
                (p.path.get_ident().map(ToString::to_string), args)
            }
            other => return Err(unknown(other.span())),
        },
        other => return Err(unknown(other.span())),
    };
    let span = clause.span();
    let strings = |what: &str| -> syn::Result<Vec<LitStr>> {
        let lits = literals(args, span).map_err(|_| {
            syn::Error::new(span, format!("expected one or more {what} string literals"))
        })?;
        if let Some(empty) = lits.iter().find(|l| l.value().is_empty()) {
            return Err(syn::Error::new(empty.span(), format!("an empty {what}")));
        }
        Ok(lits)
    };
    let seconds = || -> syn::Result<proc_macro2::TokenStream> {
        match args.iter().collect::<Vec<_>>().as_slice() {
            [
                Expr::Lit(ExprLit {
                    lit: Lit::Int(n), ..
                }),
            ] => Ok(quote!(::std::time::Duration::from_secs(#n))),
            _ => Err(syn::Error::new(span, "expected a number of seconds")),
        }
    };
    let nested = |checks: &mut Vec<_>| -> syn::Result<Vec<proc_macro2::TokenStream>> {
        if args.is_empty() {
            return Err(syn::Error::new(
                span,
                "a combination needs at least one clause",
            ));
        }
        args.iter().map(|c| requirement(c, checks)).collect()
    };
    Ok(match name.as_deref() {
        Some(ctor @ ("scopes" | "scopes_any")) => {
            let scopes = strings("scope")?;
            checks.extend(scopes.iter().map(scope_check));
            let ctor = format_ident!("{}", if ctor == "scopes" { "scopes_all" } else { ctor });
            quote!(::tokengate::Requirement::#ctor([#(#scopes),*]))
        }
        Some("role") => {
            let roles = strings("role")?;
            if roles.len() != 1 {
                return Err(syn::Error::new(
                    span,
                    "role(..) names one role: use roles(..)",
                ));
            }
            quote!(::tokengate::Requirement::role(#(#roles)*))
        }
        Some(ctor @ ("roles" | "roles_any")) => {
            let roles = strings("role")?;
            let ctor = format_ident!("{}", if ctor == "roles" { "roles_all" } else { ctor });
            quote!(::tokengate::Requirement::#ctor([#(#roles),*]))
        }
        Some("client") => {
            let clients = strings("client")?;
            quote!(::tokengate::Requirement::client_in([#(#clients),*]))
        }
        Some("acr") => {
            let values = strings("acr value")?;
            quote!(::tokengate::Requirement::acr([#(#values),*]))
        }
        Some(ctor @ ("claim_equals" | "claim_contains")) => {
            let mut it = args.iter();
            let (
                Some(Expr::Lit(ExprLit {
                    lit: Lit::Str(path),
                    ..
                })),
                Some(value),
                None,
            ) = (it.next(), it.next(), it.next())
            else {
                return Err(syn::Error::new(span, "expected (\"claim.path\", value)"));
            };
            if path.value().is_empty() || path.value().split('.').any(str::is_empty) {
                return Err(syn::Error::new(
                    path.span(),
                    "an empty claim name in the path",
                ));
            }
            let ctor = format_ident!("{}", ctor);
            quote!(::tokengate::Requirement::#ctor(#path, #value))
        }
        Some("issued_within") => {
            let d = seconds()?;
            quote!(::tokengate::Requirement::issued_within(#d))
        }
        Some("max_auth_age") => {
            let d = seconds()?;
            quote!(::tokengate::Requirement::max_auth_age(#d))
        }
        Some("all") => {
            let c = nested(checks)?;
            quote!(::tokengate::Requirement::all([#(#c),*]))
        }
        Some("any") => {
            let c = nested(checks)?;
            quote!(::tokengate::Requirement::any([#(#c),*]))
        }
        Some("not") => {
            let c = nested(checks)?;
            if c.len() != 1 {
                return Err(syn::Error::new(span, "not(..) takes one clause"));
            }
            quote!(::tokengate::Requirement::not(#(#c)*))
        }
        _ => return Err(unknown(span)),
    })
}

/// A compile-time check of one scope literal, by the library's own rule.
fn scope_check(lit: &LitStr) -> proc_macro2::TokenStream {
    let message = format!(
        "{:?} is not an RFC 6749 §3.3 scope: one or more visible ASCII characters other than '\"' and '\\', no spaces",
        lit.value()
    )
    .replace('{', "{{")
    .replace('}', "}}");
    quote_spanned! {lit.span()=>
        const _: () = ::core::assert!(::tokengate::is_scope_token(#lit), #message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(attr: proc_macro2::TokenStream, handler: ItemFn) -> String {
        expand(attr, handler).unwrap_err().to_string()
    }

    fn handler() -> ItemFn {
        syn::parse_quote! { async fn handler() {} }
    }

    #[test]
    fn no_scope_is_an_error() {
        assert_eq!(
            error(quote!(), handler()),
            "#[require_scopes] needs at least one scope"
        );
        assert_eq!(
            error(quote!(any()), handler()),
            "#[require_scopes] needs at least one scope"
        );
    }

    #[test]
    fn scopes_must_be_literals() {
        assert_eq!(
            error(quote!(SCOPE), handler()),
            "expected a scope string literal"
        );
        assert_eq!(
            error(quote!(some("a")), handler()),
            "expected scope strings, `all(\"…\", …)` or `any(\"…\", …)`"
        );
    }

    #[test]
    fn methods_are_refused() {
        let method: ItemFn = syn::parse_quote! { async fn handler(&self) {} };
        assert!(error(quote!("a"), method).contains("not methods"));
    }

    #[test]
    fn every_scope_is_checked_by_the_library_rule() {
        let out = expand(quote!(any("items:read", "say\"hi\"")), handler())
            .unwrap()
            .to_string();
        assert_eq!(out.matches(":: tokengate :: is_scope_token").count(), 2);
        assert!(out.contains("is not an RFC 6749 §3.3 scope"));
        assert!(out.contains("const ANY : bool = true"));
    }
}

#[cfg(test)]
mod require_tests {
    use super::*;

    fn error(attr: proc_macro2::TokenStream) -> String {
        expand_require(attr, syn::parse_quote! { async fn handler() {} })
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn clauses_are_checked_at_compile_time() {
        assert_eq!(error(quote!()), "#[require] needs at least one clause");
        assert!(error(quote!(rol("a"))).starts_with("expected a clause"));
        assert!(error(quote!(role(""))).contains("an empty role"));
        assert!(error(quote!(roles())).contains("expected one or more role"));
        assert!(error(quote!(role("a", "b"))).contains("use roles"));
        assert!(error(quote!(claim_equals("a..b", 1))).contains("an empty claim name"));
        assert!(error(quote!(max_auth_age("5m"))).contains("seconds"));
        assert!(error(quote!(any())).contains("at least one clause"));
        assert!(error(quote!(not(user, machine))).contains("one clause"));
    }

    #[test]
    fn clauses_become_one_requirement() {
        let out = expand_require(
            quote!(
                scopes("items:read"),
                any(role("auditor"), machine),
                acr("urn:mfa"),
                max_auth_age(300)
            ),
            syn::parse_quote! { async fn handler() {} },
        )
        .unwrap()
        .to_string();
        assert!(out.contains(":: tokengate :: Requirement :: all (["));
        assert!(out.contains(":: tokengate :: Requirement :: scopes_all ([\"items:read\"])"));
        assert!(out.contains(":: tokengate :: Requirement :: any (["));
        assert!(out.contains("from_secs (300)"));
        assert_eq!(out.matches(":: tokengate :: is_scope_token").count(), 1);
        assert!(out.contains("Authorized < __TokengateRequirement_handler >"));
    }
}
