"""Request and response models of the native API (`XCreate` / `XUpdate` / `XPublic`)."""
