"""The components behind one repository protocol, composed by priority into the catalog."""
