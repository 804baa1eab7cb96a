/**
 * Identity rules that hold in both directories. The hybrid link: Entra's onPremisesImmutableId is the
 * base64 of the AD objectGUID's 16 bytes (as stored, little-endian first three fields), case-sensitive,
 * which is also what ADFS issues as the ImmutableID claim.
 */
export function immutableIdFromObjectGuid(objectGuidBase64: string): string {
  const bytes = Buffer.from(objectGuidBase64, 'base64');
  if (bytes.length !== 16 || bytes.toString('base64') !== objectGuidBase64) {
    throw new Error('objectGUID must be base64 of exactly 16 bytes');
  }
  return objectGuidBase64;
}

export function upnParts(userPrincipalName: string): { alias: string; domain: string } {
  const at = userPrincipalName.lastIndexOf('@');
  return { alias: userPrincipalName.slice(0, at), domain: userPrincipalName.slice(at + 1).toLowerCase() };
}

/** Graph allows A-Z a-z 0-9 ' . - _ ! # ^ ~ in the alias; no leading/trailing dot, no "..". */
export const upnPattern =
  /^(?!\.)(?!.*\.\.)[A-Za-z0-9'._!#^~-]{1,64}(?<!\.)@(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$/;

/** A mailNickname from the alias: Graph refuses @ () \ [] " ; : . <> , and spaces. */
export function mailNicknameFrom(alias: string): string {
  const cleaned = alias.replace(/[@()\\[\]";:.<>, ]/g, '').slice(0, 64);
  return cleaned === '' ? 'user' : cleaned;
}

/** Windows AD: ≤ 20 characters, none of " / \ [ ] : ; | = , + * ? < > (Samba accepts more; we do not). */
export const sAMAccountNamePattern = /^[^"/\\[\]:;|=,+*?<>@\s]{1,20}$/;

export function sAMAccountNameFrom(alias: string): string {
  const cleaned = alias
    .replace(/["/\\[\]:;|=,+*?<>@\s]/g, '')
    .slice(0, 20)
    .replace(/\.+$/, '');
  return cleaned === '' ? 'user' : cleaned;
}
