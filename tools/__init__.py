"""Tools of the local assistant: prompting, model access, alias detection."""
