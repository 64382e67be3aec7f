"""Apply: runs a plan against the database (`executor`) and Zitadel (`journal`)."""
