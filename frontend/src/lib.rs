//! The browser side: makes the portal's islands (its interactive parts) live. The rest of every
//! page is server-rendered HTML that needs no code in the browser; a page without islands does not
//! load this at all.

// Links the portal's crate, whose islands export their own entry points (nothing here names them,
// so without this the linker would leave them out).
extern crate app;

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    // Sets up the reactive root; leptos' island script then hydrates each island on the page.
    leptos::mount::hydrate_islands();
}
