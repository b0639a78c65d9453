"""Pipeline stages: one module per DVC stage, each a pure core plus a `main()` edge."""
