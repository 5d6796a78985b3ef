"""wmjax."""
