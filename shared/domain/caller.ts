/**
 * Who is calling our API. Every credential belongs to exactly one service provider and may be narrowed
 * to some of its customers; nothing a caller does can reach another provider's data.
 */
export interface Caller {
  /** Key id, Entra app id, or (console sign-in) the Entra user's object id: never the secret. */
  id: string;
  kind: 'apiKey' | 'entraApp' | 'entraUser';
  providerId: string;
  /** Undefined: every customer of the provider. */
  customerIds?: string[];
}

export function canAccessCustomer(caller: Caller, customerId: string): boolean {
  return caller.customerIds === undefined || caller.customerIds.includes(customerId);
}
