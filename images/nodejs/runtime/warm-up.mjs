// The shim's warm-up function (runtime.cjs, warmUp()): loaded and invoked once at boot.
export default async () => null;
