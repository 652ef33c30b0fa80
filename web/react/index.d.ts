// Types of herald-client/react (react/index.js).

import type { Collection, CollectionError, CollectionOptions, CollectionStatus, HeraldClient } from "../herald.js";

/** What `useCollection` returns. */
export interface CollectionView<R = Record<string, unknown>> {
  /**
   * The rows, in snapshot order (by key) then arrival order; a row that changes keeps its
   * place. A new array after each change; unchanged rows are the same objects.
   */
  readonly data: readonly R[];
  /** The same rows by key. */
  readonly items: ReadonlyMap<string, R>;
  /** No complete snapshot yet (or a fresh one is on its way after a reset). */
  readonly isLoading: boolean;
  /** The last failure to load the rows (retried by itself unless `fatal`), or a misuse (`bad_collection`). */
  readonly error: CollectionError | null;
  readonly status: CollectionStatus;
}

/**
 * The live rows of collection `topic` over `herald` (whose topics include `topic`). Components
 * asking for the same client, topic and key share one collection.
 */
export declare function useCollection<R = Record<string, unknown>>(
  herald: HeraldClient | null | undefined,
  topic: string,
  options?: CollectionOptions,
): CollectionView<R>;

/** A `useSyncExternalStore` store over a collection (notifies once per microtask). */
export declare function collectionStore<R = Record<string, unknown>>(
  collection: Collection<R>,
): { subscribe(cb: () => void): () => void; getSnapshot(): CollectionView<R> };

/** The view of a collection as it is now. */
export declare function viewOf<R = Record<string, unknown>>(collection: Collection<R>): CollectionView<R>;
