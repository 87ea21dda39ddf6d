"""Control loops. One module per controller; each registers itself with ``@register``."""
