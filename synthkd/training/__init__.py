"""training room; see ../shared/DESIGN.md. Public names are re-exported here."""
