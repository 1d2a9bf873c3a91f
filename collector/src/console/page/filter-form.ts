/**
 * A view's filter form: one field per filter, filled from the page's
 * address; submitting it loads the view at the address with the filters set
 * (empty ones left out), so the URL always says what is shown.
 */
import { h } from './dom.ts';
import { pickFilters, withParams } from './filters.ts';

export interface FilterField {
  readonly name: string;
  readonly label: string;
  /** Choices of a closed set (an empty choice meaning any); a free text field without. */
  readonly choices?: readonly string[];
  readonly placeholder?: string;
  /** `date`: a date picker (its value is turned into a bound by `convert`). */
  readonly type?: 'text' | 'date';
}

export function filterForm(opts: {
  path: string;
  fields: readonly FilterField[];
  params: URLSearchParams;
  /** Turns a field's value into the parameter's (e.g. a picked day into an RFC 3339 bound). */
  convert?: (name: string, value: string) => string;
  /** Turns a parameter's value into what its field shows (the reverse of `convert`). */
  display?: (name: string, value: string) => string;
  /** Parameters the form keeps as they are (not fields of its own). */
  keep?: readonly string[];
}): HTMLFormElement {
  const inputs = opts.fields.map((f) => {
    const given = opts.params.getAll(f.name).join(',');
    const value = opts.display ? opts.display(f.name, given) : given;
    const control = f.choices
      ? h(
          'select',
          { name: f.name, id: `filter-${f.name}` },
          h('option', { value: '' }, 'any'),
          ...f.choices.map((c) => h('option', { value: c, selected: c === value }, c)),
        )
      : h('input', {
          type: f.type ?? 'text',
          name: f.name,
          id: `filter-${f.name}`,
          value,
          placeholder: f.placeholder,
          autocomplete: 'off',
          spellcheck: 'false',
        });
    return h('label', { class: 'filter' }, h('span', {}, f.label), control);
  });
  const form = h(
    'form',
    { class: 'filters', method: 'get', action: opts.path },
    ...inputs,
    h('button', { type: 'submit' }, 'Apply'),
    h('a', { href: opts.path, class: 'clear' }, 'Clear'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const values = new URLSearchParams();
    for (const f of opts.fields) {
      const el = form.elements.namedItem(f.name) as HTMLInputElement | HTMLSelectElement | null;
      const v = el?.value.trim() ?? '';
      if (v) values.set(f.name, opts.convert ? opts.convert(f.name, v) : v);
    }
    for (const k of opts.keep ?? []) for (const v of opts.params.getAll(k)) values.append(k, v);
    const names = [...opts.fields.map((f) => f.name), ...(opts.keep ?? [])];
    location.assign(withParams(opts.path, pickFilters(values, names)));
  });
  return form;
}
