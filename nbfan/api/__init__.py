"""What users touch: App, Function and its call methods, handles, classes, options.

Runs in the caller (a kernel, a script, the Lab server) and, for calls made inside functions,
in worker tasks; everything below it (engine, objects) is reached through here."""
