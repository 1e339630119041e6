// Placeholder until the CLI bundle lands in this same change.
