"""Where runners run: one module per backend behind one interface (`backends.base`), found by
name in `backends.registry`. Worker-side code: the runner image holds none of it."""
