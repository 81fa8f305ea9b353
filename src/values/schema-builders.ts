/**
 * Small builders over TypeBox so that every key of the values schema carries a type, a default and a
 * one-line description, and every object refuses keys it does not know.
 */
import { Type, type TSchema, type TProperties, type TObject } from '@sinclair/typebox';
import { valueFormats, type ValueFormatName } from './formats.js';

export const str = (description: string, defaultValue?: string, extra: Record<string, unknown> = {}) =>
  Type.String({ description, ...(defaultValue === undefined ? {} : { default: defaultValue }), ...extra });

export const optStr = (description: string, extra: Record<string, unknown> = {}) =>
  Type.Optional(Type.String({ description, ...extra }));

export const bool = (description: string, defaultValue: boolean) => Type.Boolean({ description, default: defaultValue });

export const int = (description: string, defaultValue: number | undefined, extra: Record<string, unknown> = {}) =>
  Type.Integer({ description, ...(defaultValue === undefined ? {} : { default: defaultValue }), ...extra });

export const optInt = (description: string, extra: Record<string, unknown> = {}) =>
  Type.Optional(Type.Integer({ description, ...extra }));

export const port = (description: string, defaultValue: number) =>
  Type.Integer({ description, default: defaultValue, minimum: 1, maximum: 65535 });

/** A non-empty list of distinct ports. */
export const portList = (description: string, defaultValue: number[]) =>
  Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), { description, default: defaultValue, minItems: 1, uniqueItems: true });

export const optPort = (description: string) => Type.Optional(Type.Integer({ description, minimum: 1, maximum: 65535 }));

export const strEnum = <T extends string>(description: string, values: readonly T[], defaultValue: T) =>
  Type.Unsafe<T>({ type: 'string', enum: [...values], description, default: defaultValue });

export const strList = (description: string, defaultValue: string[] = []) =>
  Type.Array(Type.String(), { description, default: defaultValue });

/** A free-form string map (labels, annotations, selectors). */
export const stringMap = (description: string) =>
  Type.Record(Type.String(), Type.String(), { description, default: {} });

/** Free-form object passed through as it is (Kubernetes affinity, extra Synapse config...). */
export const freeform = (description: string, defaultValue: unknown = {}) =>
  Type.Unsafe<Record<string, unknown>>({ type: 'object', description, default: defaultValue });

/** A closed object whose missing keys take their defaults. */
export const group = <P extends TProperties>(description: string, properties: P): TObject<P> =>
  Type.Object(properties, { description, default: {}, additionalProperties: false });

/** A closed object with no default (it is present only when the user writes it). */
export const item = <P extends TProperties>(description: string, properties: P): TObject<P> =>
  Type.Object(properties, { description, additionalProperties: false });

export const list = <T extends TSchema>(description: string, of: T) => Type.Array(of, { description, default: [] });

/** A string of a known format (address, host name, URL, size, duration...): its pattern and error sentence. */
export const formatted = (description: string, format: ValueFormatName, defaultValue?: string) =>
  Type.String({ description, ...valueFormats[format], ...(defaultValue === undefined ? {} : { default: defaultValue }) });

export const optFormatted = (description: string, format: ValueFormatName) => Type.Optional(formatted(description, format));

/** A list of strings of one format. */
export const formattedList = (description: string, format: ValueFormatName, defaultValue: string[] = []) =>
  Type.Array(formatted(description, format), { description, default: defaultValue });
