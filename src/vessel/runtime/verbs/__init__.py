"""One module per runtime verb; each exposes `main(ctx, opts, args) -> exit code`."""
