"""Request history: every solve recorded, browsable, exportable and erasable."""
