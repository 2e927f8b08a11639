"""What runs the engines, whichever they are: the registry of engine ids, the work queue, timing,
devices and ZeroGPU, weights, the engine tier's wire and client, Stop, and give-way."""
