"""The registry: a generic store per resource over the key-value store, configured per
kind by a small strategy. ``Registry(store).must(group, version, plural)`` gives the
ResourceStore (create/get/list/watch/update/patch/delete/delete_collection)."""
