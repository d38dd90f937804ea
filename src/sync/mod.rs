//! Synchronisation: the pure planner (desired − applied → ordered ops) and the pass engine.
