"""Registry: classes found by name (noise schedules, reveal strategies, reveal-count rules).

A user adds a class with the registry's decorator and selects it by name in a config, a call or the CLI, without
editing anything else; an unknown name or a wrong constructor argument gives a ValueError that names the fix.
"""


class Registry(dict):
    """`name -> class`, filled by the `register(name)` class decorator and instantiated by `build(name, **kwargs)`."""

    def __init__(self, kind: str, decorator: str, arguments: str = "arguments"):
        super().__init__()
        self.kind, self.decorator, self.arguments = kind, decorator, arguments

    def register(self, name: str):
        """Class decorator: make the class available under `name` (and set its `name` attribute)."""

        def decorator(cls):
            if name in self:
                raise ValueError(f"A {self.kind} named {name!r} is already registered ({self[name].__name__}).")
            cls.name = name
            self[name] = cls
            return cls

        return decorator

    def check(self, name) -> None:
        """Raise a ValueError listing the registered names unless `name` is one of them."""
        if not isinstance(name, str) or name not in self:
            raise ValueError(
                f"Unknown {self.kind} {name!r}. Choose one of {sorted(self)}, or register your own class with "
                f"`@{self.decorator}(name)`."
            )

    def build(self, name: str, **kwargs):
        """An instance of the class registered as `name`, built with `kwargs`."""
        self.check(name)
        try:
            return self[name](**kwargs)
        except TypeError as error:
            raise ValueError(
                f"Bad {self.arguments} {kwargs} for the {name!r} {self.kind} ({self[name].__name__}): {error}. "
                "Pass only the arguments of its constructor."
            ) from None
